# Running from a clone:  snakemake --cores N --directory my_study
# The workflow itself ships inside the package (pipeline/workflow/Snakefile); an installed package
# runs it from any folder with:  nms-pipeline run my_study --cores N


include: "pipeline/workflow/Snakefile"


# A rule of an included file is never the default target, so this file names it.
rule default:
    input:
        rules.all.input,
    default_target: True
