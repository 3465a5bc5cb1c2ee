import unittest

from wordfreq import top_words


class TopWords(unittest.TestCase):
    def test_counts_words_case_blind(self):
        self.assertEqual(top_words("The cat and the hat", 2), [("the", 2), ("and", 1)])

    def test_ties_are_alphabetical(self):
        self.assertEqual(top_words("b a c b a c", 3), [("a", 2), ("b", 2), ("c", 2)])

    def test_numbers_and_punctuation_are_not_words(self):
        self.assertEqual(top_words("it's 42 -- it's!", 5), [("it's", 2)])

    def test_empty_text(self):
        self.assertEqual(top_words("", 3), [])


if __name__ == "__main__":
    unittest.main()
