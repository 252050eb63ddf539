# category: obfuscation
# obfuscated: yes
import operator, os
call = operator.methodcaller("system", "id")
call(os)
