package telegram_test

import (
	"github.com/orderflow/orderflow/integrations/telegram"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.Alerter = (*telegram.Client)(nil)
