# benign: assistant-style code
from dataclasses import dataclass, field, asdict
import json

@dataclass
class Item:
    name: str
    price: float
    tags: list[str] = field(default_factory=list)

    def discounted(self, pct: float) -> float:
        return round(self.price * (1 - pct / 100), 2)

items = [Item("pen", 1.5, ["office"]), Item("lamp", 23.0)]
print(json.dumps([asdict(i) for i in items]))
print([i.discounted(10) for i in items])
