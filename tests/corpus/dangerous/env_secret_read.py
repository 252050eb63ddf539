# category: environment
# obfuscated: no
import os
token = os.getenv("GITHUB_TOKEN")
key = os.environ.get("AWS_SECRET_ACCESS_KEY")
print(token, key)
