package zoho_test

import (
	"github.com/orderflow/orderflow/integrations/zoho"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.CRM = (*zoho.Client)(nil)
