# The MIST study: snakemake --cores all
# Stages (workflow/rules/): generate -> flows/warp -> train -> benchmark -> report.
# The release training of the shipped checkpoints: --configfile workflow/configs/release.yaml
import os
import sys

from snakemake.utils import min_version, validate

min_version("8.0")

if not workflow.overwrite_configfiles:  # --configfile replaces config.yaml instead of merging
    configfile: os.path.join(workflow.basedir, "config.yaml")

sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from common.checks import check_config
from common.families import use_family_files
from common.schema import check_schema

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
check_schema(config, SCHEMA)  # one line per problem
validate(config, SCHEMA)  # fills in the schema's defaults

use_family_files(config, base_dir=workflow.basedir)  # user families: here and in every job
# what the jobs would refuse, refused now; what would run otherwise than asked, said
for warning in check_config(config, base_dir=workflow.basedir):
    print(f"warning: {warning}", file=sys.stderr)


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/flows.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        all_outputs(),
    default_target: True
