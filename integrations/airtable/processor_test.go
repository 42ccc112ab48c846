package airtable_test

import (
	"github.com/orderflow/orderflow/integrations/airtable"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.ProductionLog = (*airtable.Client)(nil)
