"""Command line: wordfreq [--top N] TEXT... prints the N most frequent words of the TEXTs."""

import argparse

from wordfreq import top_words


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wordfreq", description=__doc__)
    parser.add_argument("--top", type=int, default=5, metavar="N", help="how many words (default 5)")
    parser.add_argument("text", nargs="+", help="the text to count the words of")
    args = parser.parse_args(argv)
    for word, count in top_words(" ".join(args.text), args.top):
        print(f"{count:4} {word}")


if __name__ == "__main__":
    main()
