# category: network
# obfuscated: no
import urllib.request, json

with urllib.request.urlopen("https://api.example.com/data.json") as resp:
    payload = json.load(resp)
print(len(payload))
