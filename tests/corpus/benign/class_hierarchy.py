# benign: assistant-style code
class Animal:
    def __init__(self, name):
        self.name = name
    def speak(self):
        raise NotImplementedError

class Dog(Animal):
    def speak(self):
        return f"{self.name} says woof"

class Cat(Animal):
    def speak(self):
        return f"{self.name} says meow"

for a in (Dog("Rex"), Cat("Tom")):
    print(type(a).__name__, a.speak())
