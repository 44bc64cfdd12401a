"""`python -m openwit.pipeline.shards`: the shard stage alone, on candidate Parquet files."""
import sys

from openwit.pipeline.shards.stage import main

sys.exit(main())
