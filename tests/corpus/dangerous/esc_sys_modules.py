# category: escape
# obfuscated: no
import sys, types
fake = types.ModuleType("json")
fake.dumps = lambda *a, **k: "{}"
sys.modules["json"] = fake
