# category: obfuscation
# obfuscated: yes
import operator
import os as _o
f = operator.attrgetter("popen")(_o)
print(f("id").read())
