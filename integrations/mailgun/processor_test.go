package mailgun_test

import (
	"github.com/orderflow/orderflow/integrations/mailgun"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.Mailer = (*mailgun.Client)(nil)
