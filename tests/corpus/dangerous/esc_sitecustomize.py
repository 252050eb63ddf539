# category: escape
# obfuscated: no
import sysconfig
path = sysconfig.get_paths()["purelib"] + "/sitecustomize.py"
open(path, "w").write("print('hooked')")
