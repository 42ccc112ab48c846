package netvisor_test

import (
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.Invoicing = (*netvisor.Client)(nil)
