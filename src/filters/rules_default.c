/*
 * rules_default.c — the default content rules, compiled into popgate (a
 * worker cannot open files by name once confined, and its user cannot read
 * the checkout). Format: rules.h. The hit rates on the SpamAssassin corpus
 * (README, "Content rules") were measured with
 *   popgatectl --config popgate.conf.example filter rules FILE...
 * given the .txt files of each of its folders (spam-1 and spam-2 together);
 * a rule that hit more than 1 % of all ham was left out.
 *
 * Owns: nothing but the text. Must never: hold a rule test_rules.c does not
 * see parse (the unit test loads this set).
 */
#include "filters/rules.h"

/* clang-format off */
const char rules_default_text[] =
    "# popgate's default content rules (see README, \"Content rules\").\n"
    "#\n"
    "# rule  NAME SCORE TARGET PATTERN DESCRIPTION\n"
    "# words NAME CAP DESCRIPTION\n"
    "# word  LIST WEIGHT PHRASE\n"
    "\n"
    "rule SUBJ_ALL_CAPS 1.5 header Subject /^(?=(?:[^A-Za-z]*[A-Z]){10})[^a-z]*$/ subject is all capitals\n"
    "rule SUBJ_EXCLAIM 1.5 header Subject /!.*!.*!|!!/ subject with two or more exclamation marks\n"
    "rule SUBJ_FREE 1.0 header Subject /\\bfree\\b/i subject says free\n"
    "rule SUBJ_MONEY 1.0 header Subject /\\$\\s?\\d/ subject names a dollar amount\n"
    "rule SUBJ_ADV 2.0 header Subject /^\\s*ADV\\s*:/i subject marked as advertisement\n"
    "rule SUBJ_TRAILING_ID 1.5 header Subject /\\S\\s{3,}[\\[(#]?[a-z]*\\d+[a-z\\d]*[\\])]?$/i subject ends in a tracking number after blanks\n"
    "rule BODY_100_PERCENT 1.5 body /\\b100\\s?%\\s+(?:free|guaranteed|satisfaction|legal|natural|risk[- ]free)/i 100% free, guaranteed...\n"
    "rule BODY_MILLION_MONEY 2.0 body /\\b(?:US\\s?\\$|USD)\\s?\\d+(?:[.,]\\d+)?\\s*(?:million|m\\b)|\\b(?:million|billion)\\s+(?:united states|us|u\\.s\\.?) dollars/i money amounts in millions of US dollars\n"
    "rule MISSING_DATE 1.0 header Date /^$/ no Date header\n"
    "rule DATE_TWO_DIGIT_YEAR 1.0 header Date /^(?:\\w{3},\\s*)?\\d{1,2}\\s+\\w{3}\\s+\\d{2}\\s/ Date with a two-digit year\n"
    "rule DATE_FUTURE 1.0 header Date /\\b(?:20[3-9]\\d|2[1-9]\\d\\d)\\b/ Date far in the future\n"
    "rule FROM_NAME_OTHER_ADDRESS 1.5 header From /@([a-z0-9.-]+)[^<@]*<[^@>]+@(?!\\1>)[^>]+>/i From display name holds an address of another domain\n"
    "rule FROM_DIGITS 1.0 header From /[a-z]\\d{4,}@/i From address ending in four or more digits\n"
    "rule MISSING_MESSAGE_ID 1.0 header Message-Id /^$/ no Message-Id header\n"
    "rule TO_UNDISCLOSED 1.0 header To /undisclosed.?recipient/i To: undisclosed recipients\n"
    "rule BASE64_TEXT 1.5 raw /\\A(?:[^\\r\\n]+\\r?\\n)*?Content-Transfer-Encoding:\\s*base64/i the whole message is base64-encoded\n"
    "rule CHARSET_FAR_EAST 1.5 raw /\\A(?:[^\\r\\n]+\\r?\\n)*?Content-Type:[^\\r\\n]*charset=\"?(?:ks_c_5601|euc-kr|gb2312|big5)/i Korean or Chinese charset in the top-level type\n"
    "rule CLICK_HERE_LINK 1.0 raw /<a\\s[^>]*href[^>]*>\\s*(?:<[^>]*>\\s*)*click\\s+here\\s*(?:<[^>]*>\\s*)*<\\/a>/i a link that says \"click here\" and nothing more\n"
    "rule CLICK_TO_REMOVE 1.5 body /\\bclick here to (?:be removed|unsubscribe|remove)/i \"click here to be removed\"\n"
    "rule UNSUBSCRIBE_PHRASE 1.0 body /\\bto be removed from (?:this|our|any|the) (?:mailing |e-?mail )?(?:list|database)|\\bremove (?:me|yourself) from (?:this|our|the) (?:mailing )?list/i opt-out phrases of bulk mail\n"
    "rule NOT_SPAM_CLAIM 2.0 body /\\bthis (?:e-?mail|message|mailing) is (?:not|never) (?:a |considered )?spam|\\bone[- ]time (?:mailing|e-?mail)|\\byou (?:are receiving|received) this (?:e-?mail|message) because/i claims not to be spam\n"
    "rule BODY_EXCLAIM 1.0 body /!{4,}/ four exclamation marks in a row\n"
    "rule DEAR_FRIEND 1.0 body /^\\s*dear (?:friend|sir|madam|valued customer|member|e-?mail user)/im impersonal greeting\n"
    "rule URI_NUMERIC_HOST 1.5 uri /^https?:\\/\\/\\d{1,3}(?:\\.\\d{1,3}){3}(?:[:\\/]|$)/i link to a numeric address\n"
    "\n"
    "words PHARMACY 3.0 pharmacy and drug words\n"
    "word PHARMACY 1.5 viagra\n"
    "word PHARMACY 1.5 cialis\n"
    "word PHARMACY 1.5 xanax\n"
    "word PHARMACY 1.5 valium\n"
    "word PHARMACY 1.0 online pharmacy\n"
    "word PHARMACY 1.0 prescription\n"
    "word PHARMACY 1.0 phentermine\n"
    "word PHARMACY 1.0 weight loss\n"
    "word PHARMACY 1.0 lose weight\n"
    "word PHARMACY 1.0 herbal\n"
    "\n"
    "words CASINO 3.0 gambling words\n"
    "word CASINO 1.5 casino\n"
    "word CASINO 1.0 online casino\n"
    "word CASINO 1.0 jackpot\n"
    "word CASINO 1.0 blackjack\n"
    "word CASINO 1.0 roulette\n"
    "\n"
    "words MONEY_OFFER 3.0 money offers\n"
    "word MONEY_OFFER 1.0 mortgage\n"
    "word MONEY_OFFER 1.0 refinance\n"
    "word MONEY_OFFER 1.0 lowest rates\n"
    "word MONEY_OFFER 1.0 work from home\n"
    "word MONEY_OFFER 1.0 home based business\n"
    "word MONEY_OFFER 1.0 extra income\n"
    "word MONEY_OFFER 1.0 financial freedom\n"
    "word MONEY_OFFER 0.5 make money\n"
    "\n"
    "words MARKETING 3.0 marketing phrases\n"
    "word MARKETING 1.0 act now\n"
    "word MARKETING 1.0 order now\n"
    "word MARKETING 1.0 limited time\n"
    "word MARKETING 1.0 risk free\n"
    "word MARKETING 1.0 no obligation\n"
    "word MARKETING 1.0 money back\n"
    "word MARKETING 1.0 satisfaction guaranteed\n"
    "word MARKETING 1.0 special promotion\n"
    "word MARKETING 1.0 call now\n"
    "word MARKETING 1.0 opt-in\n"
    ;
/* clang-format on */
