# category: network
# obfuscated: no
import http.client, json, os

conn = http.client.HTTPSConnection("collector.example.net")
conn.request("POST", "/c", body=json.dumps({"cwd": os.getcwd()}))
print(conn.getresponse().status)
