"""digest: a self-hosted newsletter and digest publisher."""


def __getattr__(name: str) -> str:
    """`__version__`, read when first asked for: importing the package itself stays
    instant, so a Ctrl-C as the command starts meets `digest.launch`, not a traceback."""
    if name != "__version__":
        raise AttributeError(f"module 'digest' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        # The distribution's name (pyproject.toml), not the import package's.
        found = version("digest-publisher")
    except PackageNotFoundError:  # running from a source tree without installing
        found = "0.0.0"
    globals()["__version__"] = found
    return found
