# category: escape
# obfuscated: no
import sys

class Hijack:
    def find_spec(self, name, path, target=None):
        print("import", name)
        return None

sys.meta_path.insert(0, Hijack())
