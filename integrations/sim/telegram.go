package sim

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// telegramSim serves the Bot API's sendMessage. Every accepted message is
// an alert created; alerts are not tied to one order, so they are never
// counted as duplicates.
type telegramSim struct {
	s *Server
}

func newTelegramSim(s *Server) *telegramSim { return &telegramSim{s: s} }

// telegramToken is the form of a bot token: <bot id>:<secret>.
var telegramToken = regexp.MustCompile(`^bot[0-9]+:[A-Za-z0-9_-]+$`)

func telegramError(w http.ResponseWriter, status int, desc string) {
	writeJSON(w, status, obj{"ok": false, "error_code": status, "description": desc})
}

func telegramErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status >= 500 {
		telegramError(w, status, "Service Unavailable: "+msg)
		return
	}
	telegramError(w, http.StatusBadRequest, "Bad Request: "+msg)
}

func (tg *telegramSim) sendMessage(w http.ResponseWriter, r *http.Request) {
	bot := r.PathValue("bot")
	if !telegramToken.MatchString(bot) {
		telegramError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	params := map[string]any{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		raw, err := readBody(w, r)
		if err == nil {
			err = json.Unmarshal(raw, &params)
		}
		if err != nil {
			telegramError(w, http.StatusBadRequest, "Bad Request: can't parse JSON request")
			return
		}
	default:
		if ct == "multipart/form-data" {
			_ = r.ParseMultipartForm(maxBody)
		} else {
			_ = r.ParseForm()
		}
		for k, v := range r.Form {
			params[k] = v[0]
		}
	}
	chat := fmt.Sprint(params["chat_id"])
	if params["chat_id"] == nil || chat == "" {
		telegramError(w, http.StatusBadRequest, "Bad Request: chat_id is empty")
		return
	}
	text, _ := params["text"].(string)
	if strings.TrimSpace(text) == "" {
		telegramError(w, http.StatusBadRequest, "Bad Request: message text is empty")
		return
	}
	if utf8.RuneCountInString(text) > 4096 {
		telegramError(w, http.StatusBadRequest, "Bad Request: message is too long")
		return
	}
	if pm, _ := params["parse_mode"].(string); strings.EqualFold(pm, "HTML") {
		if msg := checkTelegramHTML(text); msg != "" {
			telegramError(w, http.StatusBadRequest, "Bad Request: can't parse entities: "+msg)
			return
		}
	}
	botID, _, _ := strings.Cut(strings.TrimPrefix(bot, "bot"), ":")
	msgID := nextID()
	chatObj := obj{"type": "private"}
	if n, err := strconv.ParseInt(strings.TrimSuffix(chat, ".0"), 10, 64); err == nil {
		chatObj["id"] = n
		if n < 0 {
			chatObj["type"] = "supergroup"
		}
	} else {
		chatObj["id"] = -1000000000000 - int64(hash64(chat)%1000000000)
		chatObj["type"] = "channel"
		chatObj["username"] = strings.TrimPrefix(chat, "@")
	}
	now := nowUTC()
	file := tg.s.outbox.write(StepAlert, fmt.Sprintf("%d.txt", msgID), []byte(text+"\n"))
	tg.s.stats.created(StepAlert, "alert", "")
	tg.s.outbox.record(entry{Time: now, Step: StepAlert, Kind: "alert", ID: strconv.FormatUint(msgID, 10), Action: "create", File: file})
	id, _ := strconv.ParseInt(botID, 10, 64)
	writeJSON(w, http.StatusOK, obj{"ok": true, "result": obj{
		"message_id": msgID,
		"from":       obj{"id": id, "is_bot": true, "first_name": "orderflow sim", "username": "orderflow_sim_bot"},
		"chat":       chatObj,
		"date":       now.Unix(),
		"text":       text,
	}})
}

// telegramTags are the tags Telegram's HTML parse mode supports.
var telegramTags = map[string]bool{"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true, "s": true,
	"strike": true, "del": true, "span": true, "tg-spoiler": true, "a": true, "code": true, "pre": true, "blockquote": true, "tg-emoji": true}

var htmlTag = regexp.MustCompile(`^</?([a-zA-Z-]+)(\s[^<>]*)?>`)
var htmlEntity = regexp.MustCompile(`^&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);`)

// checkTelegramHTML reports text Telegram would refuse in HTML mode: an
// unsupported tag, or a bare '<' or '&' that is not a tag or an entity.
func checkTelegramHTML(text string) string {
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '<':
			m := htmlTag.FindStringSubmatch(text[i:])
			if m == nil {
				return fmt.Sprintf("unescaped '<' at byte offset %d", i)
			}
			if !telegramTags[strings.ToLower(m[1])] {
				return fmt.Sprintf("unsupported start tag %q at byte offset %d", m[1], i)
			}
			i += len(m[0]) - 1
		case '&':
			if !htmlEntity.MatchString(text[i:]) {
				return fmt.Sprintf("unescaped '&' at byte offset %d", i)
			}
		}
	}
	return ""
}
