# category: process
# obfuscated: yes
import operator
import os
operator.methodcaller("system", "id")(os)
