from setuptools import find_packages, setup

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
    install_requires=[
        "Twisted[websocket]>=25.5",
        "prompt_toolkit>=3.0.30",
        "argon2-cffi>=23.1",
        "txredisapi>=1.6",  # --redis: msgsvc.state.redis
        # hiredis: txredisapi's C reply parser, which it takes when installed.  Without it txredisapi
        # parses each reply after a bulk string in a reactor pass of its own, pausing the socket between.
        "hiredis>=2.0",
    ],
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
