# benign: assistant-style code
from pprint import pprint

config = {
    "database": {"host": "localhost", "port": 5432, "replicas": ["r1", "r2"]},
    "features": {"beta": True, "limits": {"users": 100, "projects": 10}},
}
pprint(config, width=60)
