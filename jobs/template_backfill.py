"""Flex Template entry point of the backfill job (FLEX_TEMPLATE_PYTHON_PY_FILE)."""

import logging
import sys

from jobs.flex_template import run

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run("backfill", sys.argv[1:])
