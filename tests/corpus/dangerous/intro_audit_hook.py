# category: introspection
# obfuscated: no
import sys
sys.addaudithook(lambda event, args: None)
