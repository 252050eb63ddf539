# category: dynamic-code
# obfuscated: no
import runpy
runpy.run_path("downloaded_script.py", run_name="__main__")
