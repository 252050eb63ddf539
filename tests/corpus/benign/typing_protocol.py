# benign: assistant-style code
from typing import Protocol

class Shape(Protocol):
    def area(self) -> float: ...

class Square:
    def __init__(self, side: float) -> None:
        self.side = side
    def area(self) -> float:
        return self.side ** 2

class Circle:
    def __init__(self, r: float) -> None:
        self.r = r
    def area(self) -> float:
        return 3.14159 * self.r ** 2

shapes: list[Shape] = [Square(2), Circle(1)]
print(sum(s.area() for s in shapes))
