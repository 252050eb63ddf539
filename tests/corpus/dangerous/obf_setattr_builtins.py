# category: escape
# obfuscated: yes
import builtins
setattr(builtins, "pr" + "int", lambda *a: None)
