# benign: assistant-style code
import argparse

def main() -> None:
    parser = argparse.ArgumentParser(description="Convert temperatures")
    parser.add_argument("value", type=float)
    parser.add_argument("--to", choices=["c", "f"], default="c")
    args = parser.parse_args()
    if args.to == "c":
        print(round((args.value - 32) * 5 / 9, 2))
    else:
        print(round(args.value * 9 / 5 + 32, 2))

if __name__ == "__main__":
    main()
