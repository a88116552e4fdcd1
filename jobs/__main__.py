"""`python -m jobs` runs the `feature-store` command line."""

from jobs.cli import main

if __name__ == "__main__":
    main()
