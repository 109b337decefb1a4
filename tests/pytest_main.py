"""Runs one pytest file as a program: the `main` of tfopt's Bazel py_test targets."""

import sys

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main(["-p", "no:cacheprovider", *sys.argv[1:]]))
