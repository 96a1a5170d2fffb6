"""Build the optional C accelerator of the WhatsApp parser.

Everything else about the package is declared in setup.cfg. The extension
is optional: where no C compiler is found, the install goes on and the
parser runs on its pure-Python path, which gives the same messages more
slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wallie.whatsapp._speedups",
            sources=["wallie/whatsapp/_speedups.c"],
            optional=True,
        )
    ]
)
