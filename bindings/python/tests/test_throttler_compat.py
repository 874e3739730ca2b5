"""Tests in the style of the original throttler's own suite (unittest, run by pytest):
written against its documented behaviour, with only the import changed from
`from throttler import EventThrottler`."""

import unittest

from tidegate import EventThrottler


class EventThrottlerTests(unittest.TestCase):
    def setUp(self):
        self.throttler = EventThrottler(window=10)

    def test_basic_throttling(self):
        self.assertTrue(self.throttler.should_process(1, "e1", "userA"))
        self.assertFalse(self.throttler.should_process(5, "e2", "userA"))
        self.assertTrue(self.throttler.should_process(12, "e3", "userA"))
        self.assertTrue(self.throttler.should_process(15, "e4", "userB"))
        self.assertFalse(self.throttler.should_process(20, "e5", "userB"))

    def test_multiple_keys(self):
        self.assertTrue(self.throttler.should_process(1, "e1", "userA"))
        self.assertTrue(self.throttler.should_process(2, "e2", "userB"))
        self.assertTrue(self.throttler.should_process(3, "e3", "userC"))
        self.assertFalse(self.throttler.should_process(4, "e4", "userA"))
        self.assertFalse(self.throttler.should_process(5, "e5", "userB"))
        self.assertEqual(self.throttler.get_key_count(), 3)

    def test_window_update(self):
        self.assertTrue(self.throttler.should_process(1, "e1", "userA"))
        self.throttler.update_window(20)
        self.assertEqual(self.throttler.get_window(), 20)
        self.assertFalse(self.throttler.should_process(15, "e2", "userA"))
        self.assertTrue(self.throttler.should_process(21, "e3", "userA"))

    def test_default_window(self):
        self.assertEqual(EventThrottler().get_window(), 10)

    def test_clear(self):
        self.throttler.should_process(1, "e1", "userA")
        self.throttler.should_process(2, "e2", "userB")
        self.throttler.clear()
        self.assertEqual(self.throttler.get_key_count(), 0)
        self.assertTrue(self.throttler.should_process(3, "e3", "userA"))

    def test_event_id_does_not_matter(self):
        self.assertTrue(self.throttler.should_process(1, "same", "userA"))
        self.assertFalse(self.throttler.should_process(2, "other", "userA"))
        self.assertTrue(self.throttler.should_process(2, "same", "userB"))


if __name__ == "__main__":
    unittest.main()
