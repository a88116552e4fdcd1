"""Flex Template entry point of the stream job (FLEX_TEMPLATE_PYTHON_PY_FILE)."""

import logging
import sys

from jobs.flex_template import run

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run("stream", sys.argv[1:])
