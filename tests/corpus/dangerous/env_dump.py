# category: environment
# obfuscated: no
import os, json
print(json.dumps(dict(os.environ), indent=2))
