"""`python -m openwit.pipeline.shards`: the shard stage alone, on candidate Parquet files."""
import sys

from openwit.common.launch import BUILD_EARLY, run

sys.exit(run("openwit.pipeline.shards.stage:main", BUILD_EARLY))
