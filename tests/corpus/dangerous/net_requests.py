# category: network
# obfuscated: no
import requests
r = requests.post("https://webhook.example.com/hook", json={"k": "v"})
print(r.status_code)
