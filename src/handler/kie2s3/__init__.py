"""kie2s3: archive the files kie.ai generates into S3, exactly once."""

__version__ = "0.1.0"
