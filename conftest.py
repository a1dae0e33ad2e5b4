"""Root conftest: every test directory gets the kernel's fixtures."""

pytest_plugins = ["eventkit.testing"]
