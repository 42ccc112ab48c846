package slack_test

import (
	"github.com/orderflow/orderflow/integrations/slack"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.Alerter = (*slack.Client)(nil)
