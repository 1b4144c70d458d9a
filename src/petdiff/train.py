"""`python -m petdiff.train -cn=NAME ...` (what torchrun runs): the same as `petdiff train`."""

import sys

from petdiff.cli import quiet_openmp

if __name__ == "__main__":
    quiet_openmp()
    from petdiff.commands.train import main

    sys.exit(main(sys.argv[1:]))
