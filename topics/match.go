package topics

// Match reports whether topic matches pattern. It is false when pattern is
// not a valid pattern or topic is not a valid topic, so a topic containing
// wildcard tokens matches nothing.
func Match(pattern, topic string) bool {
	if ValidPattern(pattern) != nil || ValidTopic(topic) != nil {
		return false
	}
	return matchValid(pattern, topic)
}

// matchValid walks both strings byte by byte in one pass; the inputs must
// be valid. It runs for every cached topic when a wildcard subscription
// changes, so it avoids per-token calls.
func matchValid(pattern, topic string) bool {
	p, t := 0, 0
	for {
		// p and t are at the start of a token.
		if t >= len(topic) {
			return false // the pattern has tokens left, the topic none
		}
		c := pattern[p]
		if (c == '*' || c == '>') && (p+1 == len(pattern) || pattern[p+1] == '.') {
			if c == '>' {
				return true
			}
			for t < len(topic) && topic[t] != '.' {
				t++
			}
			p++
		} else {
			for p < len(pattern) && pattern[p] != '.' {
				if t == len(topic) || topic[t] != pattern[p] {
					return false
				}
				p++
				t++
			}
			if t < len(topic) && topic[t] != '.' {
				return false // the topic's token is longer
			}
		}
		if p == len(pattern) {
			return t == len(topic)
		}
		p++
		t++
	}
}
