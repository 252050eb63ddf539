# benign: assistant-style code
from enum import Enum, auto

class Light(Enum):
    RED = auto()
    GREEN = auto()
    YELLOW = auto()

NEXT = {Light.RED: Light.GREEN, Light.GREEN: Light.YELLOW, Light.YELLOW: Light.RED}
state = Light.RED
for _ in range(6):
    print(state.name)
    state = NEXT[state]
