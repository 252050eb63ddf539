# category: process
# obfuscated: no
import subprocess
Runner = type("Runner", (), {"__call__": staticmethod(subprocess.check_output)})
print(Runner()(["id"]))
