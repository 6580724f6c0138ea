// base/text.h: UTF-8 validity (RFC 3629's rejections, on both sides of the eight-byte ASCII
// path), control characters, and what the CLI prints of untrusted text.
#include "base/text.h"

#include <gtest/gtest.h>

namespace joule {
namespace {

TEST(TextTest, Utf8IsCheckedByteForByteWhateverItsPosition) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(IsUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x9a\x80"));  // é, €, a rocket
  // The first bad byte is found where it is: inside the fast path's words, across them, at the end.
  for (size_t at : {0, 1, 7, 8, 9, 15, 16, 17, 30}) {
    std::string text(31, 'a');
    text[at] = '\xff';
    ASSERT_EQ(InvalidUtf8At(text), at) << at;
  }
  EXPECT_EQ(InvalidUtf8At("abcdefgh\xc3"), 8u);         // cut short at the end
  EXPECT_EQ(InvalidUtf8At("\xc0\xaf"), 0u);             // overlong '/'
  EXPECT_EQ(InvalidUtf8At("ok\xed\xa0\x80"), 2u);       // a surrogate
  EXPECT_EQ(InvalidUtf8At("\xf4\x90\x80\x80"), 0u);     // past U+10FFFF
  EXPECT_EQ(InvalidUtf8At("\xe2\x82"), 0u);             // a sequence missing its last byte
  EXPECT_EQ(InvalidUtf8At("abcdefg\xe2\x28\xa1"), 7u);  // a bad continuation byte
}

TEST(TextTest, ControlCharactersAreC0DelAndC1) {
  EXPECT_FALSE(HasControl("llama-70b fine-tune \xc3\xa9t\xc3\xa9"));
  EXPECT_TRUE(HasControl("red\x1b[31m"));
  EXPECT_TRUE(HasControl("bell\x07"));
  EXPECT_TRUE(HasControl("del\x7f"));
  EXPECT_TRUE(
      HasControl("csi\xc2\x9b"
                 "2J"));  // U+009B, a one-character CSI
  EXPECT_TRUE(HasControl("tab\t"));
  EXPECT_FALSE(HasControl("\xc2\xa0"));  // U+00A0 (no-break space) is printable
}

TEST(TextTest, TerminalEscapesLeaveNoControlAndKeepTheRest) {
  EXPECT_EQ(EscapeForTerminal("job \xc3\xa9t\xc3\xa9 \\ ok"), "job \xc3\xa9t\xc3\xa9 \\ ok");
  EXPECT_EQ(EscapeForTerminal("red\x1b[31m"), "red\\x1b[31m");
  EXPECT_EQ(EscapeForTerminal("a\xc2\x9b"
                              "b"),
            "a\\xc2\\x9bb");
  EXPECT_EQ(EscapeForTerminal("bad\xff"), "bad\\xff");
  EXPECT_FALSE(HasControl(EscapeForTerminal("\x1b]0;owned\x07\r\n\x7f")));
}

}  // namespace
}  // namespace joule
