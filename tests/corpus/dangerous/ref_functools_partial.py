# category: process
# obfuscated: no
import functools
import subprocess
functools.partial(subprocess.run, ["id"])()
