# benign: assistant-style code
class Temperature:
    def __init__(self, celsius: float) -> None:
        self.celsius = celsius

    @property
    def fahrenheit(self) -> float:
        return self.celsius * 9 / 5 + 32

    def __repr__(self) -> str:
        return f"Temperature({self.celsius:.1f}C)"

temps = [Temperature(c) for c in (0, 21.5, 37, 100)]
print(temps, [t.fahrenheit for t in temps])
