import importlib.util
import os

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

# msgsvc.build says what is compiled and whether to (MSGSVC_COMPILE, or a C compiler present); read
# from its file, as msgsvc may not import here.
_spec = importlib.util.spec_from_file_location("_msgsvc_build", os.path.join("msgsvc", "build.py"))
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

REQUIRES = [
    "Twisted[websocket]>=25.5",
    "prompt_toolkit>=3.0.30",
    "argon2-cffi>=23.1",
    "txredisapi>=1.6",  # --redis: msgsvc.state.redis
    # hiredis: txredisapi's C reply parser, which it takes when installed.  Without it txredisapi
    # parses each reply after a bulk string in a reactor pass of its own, pausing the socket between.
    "hiredis>=2.0",
    # --metrics: the Prometheus text format, and the process's own metrics (CPU, memory, descriptors).
    "prometheus_client>=0.20",
]

# The hot path compiled with mypyc (msgsvc/build.py): mypyc type-checks the modules as mypy --strict does,
# with what they import, so the build needs mypy, its zope plugin (pyproject.toml) and msgsvc's own
# requirements.  setuptools asks pip for setup_requires before it builds: a pure build needs none.
compiled = build.compile_wanted(os.environ)
ext_modules = []
if compiled:
    try:
        from mypyc.build import mypycify
    except ImportError:  # setuptools is asking what the build needs: setup_requires says it
        pass
    else:
        paths = [module.replace(".", "/") + ".py" for module in build.COMPILED]
        ext_modules = mypycify(paths, group_name="msgsvc._native")


class BuildExt(build_ext):
    """Compiles every time: an extension never older than its source (msgsvc.build says it stale), though
    mypyc leaves a C file it would write alike untouched, and setuptools then keeps the old build."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.force = True


setup(
    name="msgsvc",
    version="0.1.0",
    description="A small, self-hostable message service built on Twisted",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.10",
    # twisted/plugins has no __init__.py (it must not: it would shadow
    # Twisted's own), so find_packages() cannot see it: name it.
    packages=find_packages(include=["msgsvc", "msgsvc.*"]) + ["twisted.plugins"],
    package_data={"msgsvc.fronts.web": ["static/*"]},  # the browser page (--web)
    # Twisted[websocket] (wsproto): the web front's WebSocket, twisted.web.websocket (25.5 on).
    # prompt_toolkit: the terminal client (python -m msgsvc.client --text).
    install_requires=REQUIRES,
    setup_requires=["mypy>=1.9", "mypy-zope", *REQUIRES] if compiled else [],
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExt},
    extras_require={
        "tls": ["Twisted[tls]>=23.10"],
        "bench": ["matplotlib"],  # python -m msgsvc.bench ... --plot
        # setuptools >= 70.1 builds wheels by itself: tests/test_plugin.py needs that.
        "test": [
            "Twisted[tls]>=23.10",
            "selenium",  # tests/test_web_browser.py drives the page in headless Chromium
            "pytest",
            "pytest-twisted",
            "hypothesis",
            "mypy>=1.9",  # untyped_calls_exclude
            "mypy-zope",
            "pyte",  # a terminal emulator: tests/test_client_terminal.py reads the text client's screen
            "docutils",
            "setuptools>=70.1",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Communications :: Chat",
    ],
)
