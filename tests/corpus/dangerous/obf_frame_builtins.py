# category: escape
# obfuscated: yes
import inspect
fr = inspect.currentframe()
fr.f_back.f_builtins["exec"]("import os")
