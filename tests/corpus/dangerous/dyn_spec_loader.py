# category: dynamic-code
# obfuscated: no
import importlib.util
spec = importlib.util.spec_from_file_location("plug", "/tmp/plug.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
